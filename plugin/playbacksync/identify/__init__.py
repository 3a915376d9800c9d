"""Identification: which item on each configured server is playing.

``Identifier(config, backends, index).identify(media) -> {server_id: Match}``;
``ItemIndex(data_dir)`` is the per-server SQLite item index it answers from.
"""
from .answers import METHODS, Match
from .identifier import Identifier
from .index import IndexInfo, IndexStorageError, ItemIndex
from .report import identify_json, identify_report

__all__ = ["Identifier", "Match", "METHODS", "ItemIndex", "IndexInfo", "IndexStorageError",
           "identify_report", "identify_json"]
