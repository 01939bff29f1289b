"""rootstream.audio"""
