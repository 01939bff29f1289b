"""rootstream.crypto"""
