# The two commands a newcomer needs: `make demo` and `make test`.
# They work on a fresh Debian machine with Python 3.11 and pip: uv is installed on demand.
PYTHON ?= python3
UV := $(PYTHON) -m uv
export UV_PYTHON_DOWNLOADS := never

.PHONY: demo test setup system-deps lint bench docs

demo: setup  ## start the dashboard on embedded defaults at http://localhost:8501
	$(UV) run rollout-dashboard demo

test: setup system-deps lint  ## the whole suite, real Prometheus, PostgreSQL and Chromium included
	$(UV) run pytest --cov --cov-report=term-missing:skip-covered --require-real-components --durations=25

setup:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv \
		|| $(PYTHON) -m pip install --quiet --break-system-packages uv
	$(UV) sync --frozen

system-deps:
	bash scripts/system-deps.sh

lint:
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

bench: setup  ## benchmarks, each against a baseline measured in the same run
	$(UV) run python -m tests.bench.bench_actions
	$(UV) run python -m tests.bench.bench_overview
	$(UV) run python -m tests.bench.bench_frames
	$(UV) run python -m tests.bench.bench_evaluator
	$(UV) run python -m tests.bench.bench_cli
	$(UV) run python -m tests.bench.bench_config
	$(UV) run python -m tests.bench.bench_browser
	$(UV) run python -m tests.bench.bench_unleash_sync
	$(UV) run python -m tests.bench.bench_autopilot
	$(UV) run python -m tests.bench.bench_backtest

docs: setup  ## rewrite docs/configuration.md from the settings model (app/settings.py)
	$(UV) run python -m app.settings_reference
