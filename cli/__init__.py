"""rootstream's click command line (installed as ``rootstream_cli``)."""
