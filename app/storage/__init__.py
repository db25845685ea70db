"""Result files kept in our own storage (local disk or S3): mirroring, signed links, uploads."""
