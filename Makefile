# The two commands of the README's quick start are `make night` and `make test`.
# Each sets up what it needs: system packages (when missing), a virtualenv, the package.

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp
# What the lab and the tests need from the system: sshd (the lab's sites), Kamailio (the
# lab's call router), SIPp (Debian's sip-tester: the lab's callers), nftables (the lab's
# packet-loss fault), Debian's
# chromium and chromium-driver (the report and the board are opened in a real headless browser
# through Selenium; nothing downloads a browser or a driver) and
# PostgreSQL's server binaries (the journal's tests start their own server).

.PHONY: night test proof bench system-deps venv bytecode lint clean

## night: run the whole big-bang night in the local lab, end to end
night: system-deps $(STAMP) bytecode
	$(BIN)/python scripts/night.py

## test: run the whole test suite (unit, integration, end-to-end) on two workers (each module whole on one)
test: system-deps $(STAMP) bytecode
	$(BIN)/python -m pytest -q -n 2 --no-skips

## proof: the longer proofs (a crash inside each step, the 100-SAMU programme in ten waves, a standby takeover on
## PostgreSQL, a crash at every journal boundary, a wave-2 night rolled back from each of its 7 rollback
## points); prints what it proved
proof: system-deps $(STAMP) bytecode
	$(BIN)/python scripts/proof.py
	$(BIN)/python -m pytest -q --every-crash-boundary tests/e2e/test_crash_boundaries.py
	$(BIN)/python -m pytest -q --every-rollback-point tests/e2e/test_waves.py -k "wave1_night_moves or rolling_back"

## bench: run the benchmarks and print ratios against their baselines
bench: system-deps $(STAMP) bytecode
	$(BIN)/python -m benchmarks

## lint: ruff (unused imports, import order, pyupgrade, bugbear) and mypy; make test runs them too
lint: $(STAMP)
	$(BIN)/ruff check cutover tests benchmarks scripts
	$(BIN)/python -m mypy cutover
	$(BIN)/lint-imports

venv: $(STAMP)

# Every `cutover` process would otherwise compile the package from source at start-up where
# PYTHONDONTWRITEBYTECODE is set (as on the CI machines): 0.9 s instead of 0.45 s per command,
# hundreds of commands in the tests. compileall writes the bytecode anyway; only changed files.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 cutover tests benchmarks >/dev/null

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# As root we install what is missing; otherwise we say exactly what is missing.
system-deps:
	@missing=""; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	[ -x /usr/bin/chromedriver ] || missing="$$missing chromium-driver"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/sbin/kamailio ] || missing="$$missing kamailio"; \
	[ -x /usr/bin/sipp ] || missing="$$missing sip-tester"; \
	[ -x /usr/sbin/nft ] || missing="$$missing nftables"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing (the lab's SAMU sites, call router, callers and packet loss; the report's browser test; the PostgreSQL journal tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing. Install with: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) .cutover .pytest_cache
