# The two commands of the README's quick start are `make night` and `make test`.
# Each sets up what it needs: system packages (when missing), a virtualenv, the package.

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp
SYSTEM_PACKAGES := openssh-server

.PHONY: night test proof bench system-deps venv lint clean

## night: run the whole big-bang night in the local lab, end to end
night: system-deps $(STAMP)
	$(BIN)/python -m cutover.demo

## test: run the whole test suite (unit, integration, end-to-end)
test: system-deps $(STAMP)
	$(BIN)/python -m pytest -q

## proof: the longer proofs (a 30-SAMU lab in three waves, three nights in sequence); prints what it proved
proof: system-deps $(STAMP)
	$(BIN)/python -m cutover.proof

## bench: run the benchmarks and print ratios against their baselines
bench: system-deps $(STAMP)
	$(BIN)/python -m benchmarks

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# sshd is the only system program the lab and the tests need. As root we install
# it; otherwise we say exactly what is missing.
system-deps:
	@if ! [ -x /usr/sbin/sshd ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $(SYSTEM_PACKAGES) (needed by the lab's SAMU sites)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	  else \
	    echo "missing: /usr/sbin/sshd. Install it with: sudo apt-get install $(SYSTEM_PACKAGES)" >&2; exit 1; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) .cutover .pytest_cache
