# rcstatus as a container image: `docker build -t rcstatus .`; compose.yaml runs it with
# PostgreSQL. Settings come from the environment (README, "Configuration" and "Deploy").
FROM python:3.11-slim

# No .pyc files written at run time, log lines out at once, no pip cache kept in the image.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=3000

WORKDIR /src
# The pinned dependencies first, in a layer of their own that a change to the code leaves cached.
COPY requirements.lock ./
RUN python -m pip install -r requirements.lock
# Then rcstatus itself, with the README's command (the dependencies are already in place).
COPY requirements.txt pyproject.toml README.md ./
COPY bot ./bot
RUN python -m pip install -r requirements.txt

# The bot never needs root: it listens on PORT (3000, above 1023) and writes nothing but its
# SQLite file, if DATABASE_URL is left unset, in its home.
RUN useradd --system --create-home --home-dir /home/rcstatus --uid 10001 rcstatus
USER rcstatus
WORKDIR /home/rcstatus

EXPOSE 3000
# /healthz answers 200 while the bot is up; the standard library asks, as the image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"

# `docker run IMAGE doctor` runs another subcommand with the same settings.
ENTRYPOINT ["rcstatus-bot"]
CMD ["run"]
