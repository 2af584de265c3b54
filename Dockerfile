# syntax=docker/dockerfile:1
# Production image: dependencies built in one stage, a slim non-root runtime in the other,
# gunicorn serving config.wsgi, static files collected at build time and served by WhiteNoise.
# The code belongs to root and is read-only for the user `metering`, which can write only to
# the media volume (the portal's reading photos).

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --requirement /tmp/requirements.txt

FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    DJANGO_STATIC_ROOT=/app/staticfiles \
    DJANGO_MEDIA_ROOT=/app/media \
    WEB_CONCURRENCY=3
RUN groupadd --system --gid 10001 metering \
    && useradd --system --uid 10001 --gid metering --home-dir /app --no-create-home metering
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY . /app
# collectstatic needs settings to load; this throwaway key never reaches a running container,
# nor does the cache address (collectstatic does not use the cache). A running container needs
# CACHE_URL of a cache every worker shares (e.g. redis://redis:6379/1): the production settings
# refuse a per-process one, which would count the rate limits per worker.
RUN DJANGO_SECRET_KEY=collectstatic-only-build-time-key-0123456789abcdefghijklmnop \
    DJANGO_ALLOWED_HOSTS=localhost CACHE_URL=redis://127.0.0.1:6379/1 \
    python manage.py collectstatic --noinput --verbosity 0
# Created before VOLUME, so a new volume starts with this owner and mode.
RUN install --directory --owner=metering --group=metering --mode=0750 /app/media
VOLUME ["/app/media"]
USER metering
EXPOSE 8000
# /healthz answers whatever the Host header and scheme (see metering/health.py); no curl in
# the slim image, so Python asks. urlopen raises on a non-2xx answer: the exit status is 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# Run migrations once per release: docker run --rm <image> python manage.py migrate
# --timeout above REQUEST_TIME_LIMIT_SECONDS (30): the request answers 503 before gunicorn
# would kill its worker.
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--timeout", "60", "--access-logfile", "-", "--forwarded-allow-ips", "*"]
