# The voice server image. Not exercised on machines without a Docker engine (see README).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 VOICE_DATA_DIR=/data \
    VOICE_HOST=0.0.0.0 VOICE_MEDIA_HOST=0.0.0.0 VOICE_MODELS_DIR=/data/models
WORKDIR /app
COPY pyproject.toml README.md ./
COPY voice_server ./voice_server
COPY clients ./clients
# No model is baked in: the transcriber service reads /data/models (see docker-compose.yml).
RUN pip install --no-cache-dir . && useradd --system --uid 1000 voice && mkdir /data \
    && chown voice /data
USER voice
VOLUME ["/data"]
# HTTP (signaling, API, dashboard) and the single UDP media port
EXPOSE 8000/tcp 40000/udp
HEALTHCHECK CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
ENTRYPOINT ["voice-server"]
CMD ["serve"]
