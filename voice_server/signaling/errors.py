"""Stable signaling error codes. Clients switch on these strings: never rename one."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # malformed input (the connection stays open)
    BAD_MESSAGE = "bad_message"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELD = "invalid_field"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    # protocol order
    NOT_JOINED = "not_joined"
    ALREADY_JOINED = "already_joined"
    # authentication and authorisation (fatal before join)
    TOKEN_MISSING = "token_missing"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_AUDIENCE = "token_audience"
    TOKEN_SUBJECT = "token_subject"
    CHANNEL_FORBIDDEN = "channel_forbidden"
    CHANNEL_NOT_FOUND = "channel_not_found"
    USER_DISABLED = "user_disabled"
    USER_UNKNOWN = "user_unknown"
    JOIN_TIMEOUT = "join_timeout"
    # media negotiation
    NO_OFFER = "no_offer"
    BAD_ANSWER = "bad_answer"
    ICE_RESTART_TOO_OFTEN = "ice_restart_too_often"
    # routes (what a session talks into and hears)
    ROUTE_FORBIDDEN = "route_forbidden"
    # talk rights and priority (README, "Priority")
    LISTEN_ONLY = "listen_only"  # a listener asked to talk into a channel
    NOT_SUPERVISOR = "not_supervisor"  # what only level 2 may do (talk into several channels)
    # the dispatcher console (monitor, unmonitor, talk_target; signaling.console)
    CHANNEL_NOT_SUPERVISED = "channel_not_supervised"  # a channel the user does not supervise
    TOO_MANY_CHANNELS = "too_many_channels"  # a console would hear more than MAX_MONITORED
    EMPTY_TARGET = "empty_target"  # a talk target naming no channel
    TARGET_OFFLINE = "target_offline"  # a direct-talk user with no live session in one's channels
    # emergencies (README, "Alerts")
    EMERGENCY_OPEN = "emergency_open"  # a second emergency while one's own is open
    EMERGENCY_NONE = "emergency_none"  # cancel with no open emergency of one's own
    EMERGENCY_UNAVAILABLE = "emergency_unavailable"  # this server keeps no alerts
    # a cluster of nodes (README "Cluster"): the join is refused before anything is set up, the
    # socket closes with 1013 and the client joins again after a back-off
    CLUSTER_UNAVAILABLE = "cluster_unavailable"  # this node cannot reach the cluster's Redis
    NODE_DRAINING = "node_draining"  # this node is being drained: join another node
    # session life
    REPLACED = "replaced"
    SESSION_EXPIRED = "session_expired"
    SERVER_SHUTDOWN = "server_shutdown"
    INTERNAL = "internal"


class ProtocolError(Exception):
    """A client did something the protocol does not allow; ``code`` goes on the wire."""

    def __init__(self, code: ErrorCode, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
