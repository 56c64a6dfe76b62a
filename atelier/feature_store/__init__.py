"""The online feature store in Redis: key schema, click writer (one Lua script per batch), reader."""

from atelier.feature_store.reader import FeatureReader, ItemSignal, ReaderSettings, UserFeatures
from atelier.feature_store.writer import ClickWriter, StoredDataError, SyncClickWriter, WriterSettings

__all__ = [
    "ClickWriter",
    "FeatureReader",
    "ItemSignal",
    "ReaderSettings",
    "StoredDataError",
    "SyncClickWriter",
    "UserFeatures",
    "WriterSettings",
]
