FROM python:3.13-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config config
COPY fglab fglab
COPY worker worker
COPY tasks tasks
RUN pip install --no-cache-dir ".[monitor]"
EXPOSE 5080
CMD ["fglab", "web"]
