"""The models: one module each (network, training objective, params rules, gate metric, exports), registered
once in `registry`, which everything else asks. Shared parts: `blocks` (encoder/decoder stacks), `objective`
(what every objective shares), `checkpoint` (models/<name>.pt), `classifier` (the evaluator's network)."""
