"""The ablation runner: variants, one training run, backends (local, Ray), statistics and the report."""
