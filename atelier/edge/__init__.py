"""The edge's own parts: API keys (stored hashed), the authorization service Envoy's ext_authz filter
calls (keys and per-key rate limits), and the one place clients read their key from."""
