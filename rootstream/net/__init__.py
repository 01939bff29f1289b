"""rootstream.net"""
