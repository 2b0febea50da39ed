"""Ingestion: convert an uploaded file to text, then chunk it for the embedding model."""

from tenantrag.ingest.chunking import ChunkPiece, chunk_text, embedding_text
from tenantrag.ingest.convert import Converted, convert

__all__ = ["ChunkPiece", "Converted", "chunk_text", "convert", "embedding_text"]
