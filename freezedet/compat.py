"""placeholder; written next"""
