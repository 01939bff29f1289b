"""rootstream.input"""
