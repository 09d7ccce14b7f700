from __future__ import annotations

from fastapi import APIRouter, status

from leaderboard import crud
from leaderboard.api.deps import AdminDep, WriteSessionDep
from leaderboard.models import RegistrationTokenCreate, RegistrationTokenIssued

router = APIRouter(prefix="/registration-tokens", tags=["participants"])


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[AdminDep])
def create_registration_token(session: WriteSessionDep, token_in: RegistrationTokenCreate
                              ) -> RegistrationTokenIssued:
    """Issue a registration token (admin), for a server in ``registration = token`` mode:
    ``uses`` registrations (1, a personal invitation, by default). Shown only this once."""
    row, token = crud.create_registration_token(session=session, token_in=token_in)
    return RegistrationTokenIssued(**row.model_dump(exclude={"token_hash", "uses_left"}),
                                   token=token)
