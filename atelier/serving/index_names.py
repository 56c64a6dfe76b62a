"""The Milvus names search reads: aliases of versioned collections (atelier/serving/article_index.py).

Kept apart from article_index (which needs pymilvus) so that model-repository code runs in the
Triton image, which has no Milvus client.
"""

# Article texts (text_embedding vectors).
TEXT_COLLECTION = "articles_text"
# Article photos (CLIP image embeddings), with the same scalar fields; filled when vision is on.
IMAGE_COLLECTION = "articles_image"
