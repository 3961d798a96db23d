"""Which backend serves each store (``database_url``), and the ``db`` commands that work across
them: above both the stores (:mod:`voice_server.store`) and the call log
(:mod:`voice_server.calllog`)."""
