"""Consent, one policy for every destination: a contact field leaves for a destination only if the customer opted
in for that field's channel, and only if the destination may receive that channel at all.

    channel   field   opt-in column    sent only as
    email     email   email_opt_in     a valid address
    sms       phone   sms_opt_in       an E.164 number (a number without its country code is not guessed)

Pinpoint and Customer Profiles may receive both channels; Personalize and Segment none (their datasets and
traits never carry a contact field: `refuse_contacts` stops a file or message that would). A customer who is
not in the day's trusted state (deleted at the source) has no contact and no opt-in, so nothing leaves.

Recommendations are for messages: a customer's recommended products leave for any destination only when the
customer is a treatment member of an audience and opted in (with a valid contact) to at least one channel
(`reachable`, `deliverable_recommendations`); Pinpoint carries them only on the endpoints of consented channels.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from crosschannel.stages.activation.outbox import PERSONALIZE, PINPOINT, PROFILES, SEGMENT, ActivationError

if TYPE_CHECKING:
    import pandas as pd

E164 = re.compile(r"^\+[1-9]\d{7,14}$")
EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[A-Za-z]{2,}$")
CONTACT_LIKE = re.compile(  # what is never taken as a customer id (ids leave whatever the consent)
    r"[^@\s]+@[^@\s]+"  # an email address
    r"|\+[\d\s().-]{7,}|00\d{1,3}[\s.-][\d\s().-]{6,}"  # an international number, with + or 00
    r"|\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}"  # a North American number written out
    r"|0\d{1,4}[\s.-]\d{3,4}[\s.-]?\d{3,4}")  # a national number written out with its trunk 0
CHANNELS = {"email": ("email", "email_opt_in"), "sms": ("phone", "sms_opt_in")}  # channel: (field, opt-in)
CONTACT_FIELDS = frozenset(field for field, _ in CHANNELS.values())
DESTINATION_CHANNELS = {PINPOINT: ("email", "sms"), PROFILES: ("email", "sms"), PERSONALIZE: (), SEGMENT: ()}


def clean_phone(value) -> str | None:
    """A phone in E.164, or None (separators are dropped)."""
    if not isinstance(value, str):
        return None
    phone = re.sub(r"[\s().-]", "", value)
    return phone if E164.match(phone) else None


def clean_email(value) -> str | None:
    if not isinstance(value, str):
        return None
    email = value.strip()
    return email if EMAIL.match(email) else None


CLEAN = {"email": clean_email, "sms": clean_phone}


def contacts(profile: pd.DataFrame, destination: str) -> pd.DataFrame:
    """`profile` with each contact field replaced by what may leave for `destination`: the cleaned value where
    the customer opted in for its channel and the destination takes that channel, else None."""
    allowed = DESTINATION_CHANNELS[destination]
    frame = profile.copy()
    for channel, (field, opt_in) in CHANNELS.items():
        if field not in frame:
            continue
        if channel not in allowed:
            frame[field] = None
            continue
        opted_in = frame[opt_in].astype("boolean").fillna(False).astype(bool)
        frame[field] = frame[field].map(CLEAN[channel]).where(opted_in, None)
    return frame


def refuse_contacts(destination: str, fields, what: str) -> None:
    """Raise before anything is written or sent when a destination that takes no contact would carry one."""
    carried = sorted({str(f) for f in fields if str(f).lower() in CONTACT_FIELDS})
    if carried and not DESTINATION_CHANNELS[destination]:
        raise ActivationError(f"{destination}: {what} would carry the contact field(s) {carried}; "
                              "this destination receives no contact data (crosschannel.stages.activation.consent)")


def reachable(profile: pd.DataFrame) -> pd.Series:
    """Per customer: opted in, with a valid contact, to at least one channel (may receive a message at all)."""
    import pandas as pd

    any_channel = pd.Series(False, index=profile.index)
    for channel, (field, opt_in) in CHANNELS.items():
        opted_in = profile[opt_in].astype("boolean").fillna(False).astype(bool)
        any_channel |= opted_in & profile[field].map(CLEAN[channel]).notna()
    return any_channel


def deliverable_recommendations(profile: pd.DataFrame) -> pd.Series:
    """Per customer, the recommended products that may leave: the `recommended` list for a treatment member of
    some audience who is reachable on a channel, else []. Control members never receive theirs."""
    if "recommended" not in profile:  # no list was made for the day
        return _empty_lists(profile)
    treated = profile["audiences"].map(len).gt(0)
    allowed = treated & reachable(profile)
    return profile["recommended"].where(allowed, _empty_lists(profile))


def _empty_lists(profile: pd.DataFrame) -> pd.Series:
    import pandas as pd

    return pd.Series([[] for _ in range(len(profile))], index=profile.index, dtype=object)
