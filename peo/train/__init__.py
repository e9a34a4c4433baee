"""Training: DPO aspect policies and Bradley-Terry evaluators, as LoRA adapters on the reference model."""
