"""Moved to `privgan.models.ssgan.streams`; this module keeps the old import path working."""

from privgan.models.ssgan.streams import LABELLED, UNLABELLED, StreamRecords, image_digests

__all__ = ["LABELLED", "UNLABELLED", "StreamRecords", "image_digests"]
