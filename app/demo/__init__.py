"""The demo: the launcher (`rollout-dashboard demo` / `serve`) and the simulated
workload it starts."""
