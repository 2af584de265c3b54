# The README's two commands are `make demo` and `make test`; CI runs `.ci/run`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test install install-dev lint schemathesis lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install --quiet --requirement requirements.txt

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet --requirement requirements-dev.txt

## Install, build the demo on SQLite (prints a login and an API key), serve it.
demo: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py load_demo
	@echo "Serving on http://$(HOST):$(PORT)/ — admin at /admin/, API docs at /api/docs/"
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

## Install and run the whole test suite on PostgreSQL (DATABASE_URL, default local server).
test: install-dev
	$(BIN)/pytest --create-db $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# In-memory SQLite: the migration check needs no database server.
	DATABASE_URL=sqlite://:memory: $(BIN)/python manage.py makemigrations --check --dry-run
	DJANGO_SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(64))') \
	DJANGO_ALLOWED_HOSTS=metering.example.com CACHE_URL=redis://127.0.0.1:6379/1 \
		$(BIN)/python manage.py check --deploy --fail-level WARNING \
		--settings=config.settings.production

schemathesis: install-dev
	.ci/schemathesis

## Re-lock every transitive dependency after a change to pyproject.toml.
lock: install-dev
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --no-header -q -o requirements.txt
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --no-header -q \
		-o requirements-dev.txt
