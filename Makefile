# Resilient — the two commands are `make run` and `make test`; everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: install run test bench lint clean

install: $(STAMP)

# Re-installs when pyproject.toml changes; idempotent otherwise.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import django, rest_framework, channels, daphne, pybreaker, psycopg, redis, pytest, playwright"
	touch $(STAMP)

var/secret_key:
	mkdir -p var
	$(PY) -c "import secrets; print(secrets.token_urlsafe(50))" > $@
	chmod 600 $@

run: install var/secret_key
	SECRET_KEY="$${SECRET_KEY:-$$(cat var/secret_key)}" $(PY) manage.py migrate --noinput
	SECRET_KEY="$${SECRET_KEY:-$$(cat var/secret_key)}" $(PY) manage.py ensure_operator
	SECRET_KEY="$${SECRET_KEY:-$$(cat var/secret_key)}" $(PY) manage.py serve --host 127.0.0.1 --port $(PORT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install var/secret_key
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[wsgi]' 2>&1 | grep -v "^WARNING: Location" || true
	SECRET_KEY="$${SECRET_KEY:-$$(cat var/secret_key)}" $(PY) -m bench

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
