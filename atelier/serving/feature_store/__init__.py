"""The online feature store in Redis: key schema, click writer (one Lua script per batch), reader."""

from atelier.serving.feature_store.reader import FeatureReader, ItemSignal, ReaderSettings, UserFeatures
from atelier.serving.feature_store.writer import ClickWriter, ReplicaAckError, StoredDataError, WriterSettings

__all__ = [
    "ClickWriter",
    "FeatureReader",
    "ItemSignal",
    "ReaderSettings",
    "ReplicaAckError",
    "StoredDataError",
    "UserFeatures",
    "WriterSettings",
]
