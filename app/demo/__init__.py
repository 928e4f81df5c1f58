"""The demo: the launcher (`rollout-dashboard demo`), the simulated workload it starts and
the demo's autopilot. The production `serve` is `app.serve`."""
