"""rootstream.present"""
