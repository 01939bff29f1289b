"""rootstream.capture"""
