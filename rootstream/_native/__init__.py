"""rootstream._native"""
