"""Training the models the project cannot download: the reranker (`atelier models train-reranker`).

Training runs the serving code itself (atelier.inference: the text encoder, the reranker's pair
tokenisation and loader, CLIP's image decoding and tokenisation), so what is trained is tokenised
and loaded exactly as Triton will.
"""
