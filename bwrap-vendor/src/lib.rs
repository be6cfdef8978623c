//! The bundled bubblewrap: bytes and SHA-256 digest, computed at build time.
