"""PEO: post-training extrapolation of two aspect policies (helpfulness, harmlessness).

Words used in this code base, each for one thing (the names themselves live in `peo.names`, and those derived from
a run's aspects in `peo.aspects`):

- **aspect**: what a preference pair judges: `help` (helpfulness) or `harm` (harmlessness).
- **policy**: a model that answers: the reference (SFT) model with some LoRA adapters at some scales.
  The **aspect policies** DPO-Help and DPO-Harm are trained on one aspect's pairs each; the **joint** policy
  (scalarized DPO) on a mix of both.
- **adapter**: a trained LoRA folder (`help`, `harm`, `joint`); its **task vector** Δ = θ_policy − θ_ref.
- **coefficients** (c_help, c_harm): the policy θ_ref + c_help·Δ_help + c_harm·Δ_harm; a **point** (λ, ϕ_help,
  ϕ_harm) maps to coefficients (peo.coefficients); a **model_id** names one coefficient pair.
- **method**: how a grid row's model was made: `peo` (extrapolated grid point), `soup` (interpolation only),
  or a **baseline** (`ref`, `help`, `harm`, `joint`: fixed models).
- **evaluator**: a scoring head on reference-model features; its **kind** is `reward` (helpfulness, higher is
  better) or `cost` (harmfulness, lower is better).
- **split**: a prompt-disjoint part of the data: evaluator, policy, dev (chooses the front), test (scores it).
- **chat column**: one policy shown side by side in the app (`peo`, `ref`, `help`, `harm`, `soup`, `joint`).
"""

__version__ = "0.1.0"
