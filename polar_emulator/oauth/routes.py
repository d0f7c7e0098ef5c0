"""OAuth2 routes (to be filled in)."""

from fastapi import APIRouter

router = APIRouter()
