"""The audit log: who did what, when, with which result; append-only and hash-chained."""
