"""Builds: loaders, normalisation, tokenisation, embeddings, BM25, FAISS, the record store and the index directory."""
