"""Reference implementation of the seeds' design on Django Channels + channels-redis.

Served by daphne: ``DJANGO_SETTINGS_MODULE=bench.peers.channels.settings
daphne bench.peers.channels.asgi:application``. Environment: ``BENCH_CHANNELS_DB``
(SQLite path), ``BENCH_CHANNELS_REDIS`` (redis URL), ``TIDINGS_JWT_SECRET``,
``TIDINGS_API_KEYS``.
"""
