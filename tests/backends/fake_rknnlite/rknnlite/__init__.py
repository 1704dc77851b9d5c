"""Test double of Rockchip's ``rknnlite`` package (``rknn-toolkit-lite2``); see ``api.py``."""
