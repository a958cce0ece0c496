# syntax=docker/dockerfile:1
# The production image: gunicorn (web) or celery (workers, beat) from one image, as a non-root user.
#   docker build -t csplatform .        then see compose.yml and docs/operations.md
# Stage 1 installs the runtime requirements (requirements.txt only: no test or lint tools) into a venv
# and collects the static files; stage 2 is a clean slim image with the venv, the code and the files.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
# Requirements first: this layer is rebuilt only when the pins change, not on every code change.
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt
WORKDIR /app
COPY . .
# Hashed, gzipped static files for WhiteNoise (a throwaway key only loads the settings: nothing is signed or
# encrypted here, no key is written), and the bytecode now, since /app is read-only at run time.
RUN DJANGO_SECRET_KEY=collectstatic-only DJANGO_ALLOW_GENERATED_SECRET=true DJANGO_STATIC_ROOT=/app/var/static \
    /opt/venv/bin/python manage.py collectstatic --noinput \
    && /opt/venv/bin/python -m compileall -q /app

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_STATIC_ROOT=/app/var/static \
    PORT=8000
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code and the static files belong to root, read-only for the app user: nothing is written under /app
# at run time (settings only checks that var/ exists; gunicorn's heartbeat file goes to /dev/shm).
COPY --from=build /app /app
USER app:app
EXPOSE 8000
# The same image runs the workers and beat (compose.yml gives each its command and its health check).
CMD ["gunicorn", "-c", "gunicorn.conf.py"]
