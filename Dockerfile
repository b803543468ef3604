# Village Ledger: the ledger, its signed API and its command line on Python 3.11.
# docker compose up runs `vledger serve` (which migrates first) against the compose PostgreSQL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

COPY pyproject.toml README.md ./
COPY ledger ./ledger
COPY api ./api
COPY reconciliation ./reconciliation
COPY vledger ./vledger
COPY bench ./bench
COPY alembic ./alembic
COPY alembic.ini ./
RUN pip install .

# Import the package from /app, where alembic/ (the migrations) sits beside ledger/.
# This line can go once the wheel carries the migrations itself.
ENV PYTHONPATH=/app

# The folders compose mounts named volumes on, made here so that a new volume takes their
# owner and modes: reports (reconciliation files) and the service key's private folder.
RUN useradd --create-home --uid 10001 vledger && chown vledger /app \
    && install -d -o vledger -m 0755 /app/reports \
    && install -d -o vledger -m 0700 /var/lib/vledger/keys
USER vledger

# The database comes from $VLEDGER_DATABASE (default: sqlite:///village.db in /app).
EXPOSE 8000
CMD ["vledger", "serve", "--host", "0.0.0.0", "--port", "8000"]
