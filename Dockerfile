# predwatch: the analyzers, the CLI and the demo service in one image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --gid 1000 predwatch && useradd --uid 1000 --gid predwatch --create-home predwatch

WORKDIR /app
COPY pyproject.toml README.md ./
COPY logshipper ./logshipper
COPY analyzers ./analyzers
RUN pip install ".[analyzers]"

COPY kibana ./kibana
COPY examples ./examples
COPY deploy/predwatch.yml ./deploy/predwatch.yml

RUN mkdir -p /var/log/predwatch && chown predwatch:predwatch /var/log/predwatch
USER predwatch

ENTRYPOINT ["predwatch"]
CMD ["--help"]
