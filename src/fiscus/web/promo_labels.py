"""Texts of the promotion-code form in en, bg, ru and kk, shared by the portal and the hosted payment
page (issue 17): the form itself, and why a code does not apply, one message per refusal reason of
`domain/discounts.py: Refusal` (`promo_<reason>`), plus an unknown and a malformed code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from fiscus.domain.discounts import DiscountRefusedError
from fiscus.domain.errors import DomainError, NotFoundError, ValidationError

PROMO_LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "promo_expired": "The form has expired and nothing was changed. Please enter the code again.",
        "promo_heading": "Promotion code",
        "promo_label": "Promotion code",
        "promo_button": "Apply code",
        "promo_link": "Enter a promotion code",
        "promo_portal_hint": "The discount applies to this subscription's next invoices.",
        "promo_pay_hint": "The proforma is reissued with the discount, under a new number.",
        "promo_applied": "The promotion code is applied: this proforma was reissued with the discount.",
        "done_code_applied": "The promotion code is applied: your next invoice shows the discount.",
        "promo_code_expired": "This promotion code has expired.",
        "promo_code_max_redemptions": "This promotion code has been used the maximum number of times.",
        "promo_code_inactive": "This promotion code is no longer active.",
        "promo_wrong_customer": "This promotion code is meant for another customer.",
        "promo_not_first_purchase": "This promotion code is only for a first purchase.",
        "promo_below_minimum_amount": "The amount is below this promotion code's minimum.",
        "promo_coupon_expired": "This offer has ended.",
        "promo_coupon_max_redemptions": "This offer has been used the maximum number of times.",
        "promo_coupon_inactive": "This offer is no longer available.",
        "promo_currency_not_covered": "This promotion code does not apply in your currency.",
        "promo_nothing_covered": "This promotion code does not apply to anything you are buying here.",
        "promo_already_redeemed": "This offer is already applied.",
        "promo_stacking_not_allowed": "Only one discount can apply at a time, and one already does.",
        "promo_not_allowed_by_organization": "Promotion codes cannot be entered here.",
        "promo_document_final": (
            "An issued invoice cannot be changed, so a code cannot apply to it; "
            "it can apply to a later invoice."
        ),
        "promo_document_closed": (
            "This document can no longer change: it is paid, void or replaced, or a payment is under way."
        ),
        "promo_unknown": "There is no such promotion code.",
        "promo_invalid": "Please enter a code of 2 to 64 letters, digits, '-' or '_'.",
        "promo_state": "This subscription cannot take a discount any more.",
    },
    "bg": {
        "promo_expired": "Формата е изтекла и нищо не е променено. Въведете кода отново.",
        "promo_heading": "Промоционален код",
        "promo_label": "Промоционален код",
        "promo_button": "Приложи кода",
        "promo_link": "Въведете промоционален код",
        "promo_portal_hint": "Отстъпката се прилага към следващите фактури по този абонамент.",
        "promo_pay_hint": "Проформата се преиздава с отстъпката, с нов номер.",
        "promo_applied": "Промоционалният код е приложен: проформата е преиздадена с отстъпката.",
        "done_code_applied": "Промоционалният код е приложен: следващата ви фактура показва отстъпката.",
        "promo_code_expired": "Срокът на този промоционален код е изтекъл.",
        "promo_code_max_redemptions": "Този промоционален код е използван максималния брой пъти.",
        "promo_code_inactive": "Този промоционален код вече не е активен.",
        "promo_wrong_customer": "Този промоционален код е предназначен за друг клиент.",
        "promo_not_first_purchase": "Този промоционален код е само за първа покупка.",
        "promo_below_minimum_amount": "Сумата е под минималната за този промоционален код.",
        "promo_coupon_expired": "Тази оферта е приключила.",
        "promo_coupon_max_redemptions": "Тази оферта е използвана максималния брой пъти.",
        "promo_coupon_inactive": "Тази оферта вече не е налична.",
        "promo_currency_not_covered": "Този промоционален код не важи във вашата валута.",
        "promo_nothing_covered": "Този промоционален код не важи за нищо от купуваното тук.",
        "promo_already_redeemed": "Тази оферта вече е приложена.",
        "promo_stacking_not_allowed": "Може да важи само една отстъпка наведнъж, а вече има такава.",
        "promo_not_allowed_by_organization": "Тук не могат да се въвеждат промоционални кодове.",
        "promo_document_final": (
            "Издадена фактура не може да се променя, затова кодът не може да се приложи към нея; "
            "може да се приложи към следваща фактура."
        ),
        "promo_document_closed": (
            "Този документ вече не може да се променя: платен е, анулиран или заменен, или тече плащане."
        ),
        "promo_unknown": "Няма такъв промоционален код.",
        "promo_invalid": "Въведете код от 2 до 64 букви, цифри, „-“ или „_“.",
        "promo_state": "Към този абонамент вече не може да се прилага отстъпка.",
    },
    "ru": {
        "promo_expired": "Срок действия формы истёк, ничего не изменено. Введите код ещё раз.",
        "promo_heading": "Промокод",
        "promo_label": "Промокод",
        "promo_button": "Применить код",
        "promo_link": "Ввести промокод",
        "promo_portal_hint": "Скидка применяется к следующим счетам по этой подписке.",
        "promo_pay_hint": "Проформа выставляется заново со скидкой, под новым номером.",
        "promo_applied": "Промокод применён: проформа выставлена заново со скидкой.",
        "done_code_applied": "Промокод применён: в следующем счёте будет скидка.",
        "promo_code_expired": "Срок действия этого промокода истёк.",
        "promo_code_max_redemptions": "Этот промокод использован максимальное число раз.",
        "promo_code_inactive": "Этот промокод больше не действует.",
        "promo_wrong_customer": "Этот промокод предназначен для другого клиента.",
        "promo_not_first_purchase": "Этот промокод действует только для первой покупки.",
        "promo_below_minimum_amount": "Сумма меньше минимальной для этого промокода.",
        "promo_coupon_expired": "Это предложение закончилось.",
        "promo_coupon_max_redemptions": "Это предложение использовано максимальное число раз.",
        "promo_coupon_inactive": "Это предложение больше не доступно.",
        "promo_currency_not_covered": "Этот промокод не действует в вашей валюте.",
        "promo_nothing_covered": "Этот промокод не относится ни к чему из покупаемого здесь.",
        "promo_already_redeemed": "Это предложение уже применено.",
        "promo_stacking_not_allowed": "Одновременно может действовать только одна скидка, и она уже есть.",
        "promo_not_allowed_by_organization": "Здесь нельзя вводить промокоды.",
        "promo_document_final": (
            "Выставленный счёт нельзя изменить, поэтому код к нему не применяется; "
            "его можно применить к следующему счёту."
        ),
        "promo_document_closed": (
            "Этот документ больше нельзя изменить: он оплачен, аннулирован или заменён, либо идёт платёж."
        ),
        "promo_unknown": "Такого промокода нет.",
        "promo_invalid": "Введите код из 2–64 букв, цифр, «-» или «_».",
        "promo_state": "К этой подписке больше нельзя применить скидку.",
    },
    "kk": {
        "promo_expired": "Форманың мерзімі өтті, ештеңе өзгертілмеді. Кодты қайта енгізіңіз.",
        "promo_heading": "Промокод",
        "promo_label": "Промокод",
        "promo_button": "Кодты қолдану",
        "promo_link": "Промокод енгізу",
        "promo_portal_hint": "Жеңілдік осы жазылымның келесі шот-фактураларына қолданылады.",
        "promo_pay_hint": "Проформа жеңілдікпен, жаңа нөмірмен қайта шығарылады.",
        "promo_applied": "Промокод қолданылды: проформа жеңілдікпен қайта шығарылды.",
        "done_code_applied": "Промокод қолданылды: келесі шот-фактурада жеңілдік болады.",
        "promo_code_expired": "Бұл промокодтың мерзімі өтті.",
        "promo_code_max_redemptions": "Бұл промокод ең көп рет пайдаланылды.",
        "promo_code_inactive": "Бұл промокод енді белсенді емес.",
        "promo_wrong_customer": "Бұл промокод басқа клиентке арналған.",
        "promo_not_first_purchase": "Бұл промокод тек алғашқы сатып алуға арналған.",
        "promo_below_minimum_amount": "Сома осы промокодтың ең төменгі сомасынан аз.",
        "promo_coupon_expired": "Бұл ұсыныс аяқталды.",
        "promo_coupon_max_redemptions": "Бұл ұсыныс ең көп рет пайдаланылды.",
        "promo_coupon_inactive": "Бұл ұсыныс енді қолжетімсіз.",
        "promo_currency_not_covered": "Бұл промокод сіздің валютаңызда жарамсыз.",
        "promo_nothing_covered": "Бұл промокод мұнда сатып алынатын ештеңеге қолданылмайды.",
        "promo_already_redeemed": "Бұл ұсыныс қолданылып қойған.",
        "promo_stacking_not_allowed": "Бір уақытта тек бір жеңілдік қолданылады, ол қазірдің өзінде бар.",
        "promo_not_allowed_by_organization": "Мұнда промокод енгізуге болмайды.",
        "promo_document_final": (
            "Шығарылған шот-фактураны өзгертуге болмайды, сондықтан код оған қолданылмайды; "
            "оны келесі шот-фактураға қолдануға болады."
        ),
        "promo_document_closed": (
            "Бұл құжатты енді өзгертуге болмайды: ол төленген, жойылған немесе ауыстырылған, "
            "не төлем жүріп жатыр."
        ),
        "promo_unknown": "Мұндай промокод жоқ.",
        "promo_invalid": "2–64 әріп, сан, «-» немесе «_» таңбасынан тұратын код енгізіңіз.",
        "promo_state": "Бұл жазылымға енді жеңілдік қолдануға болмайды.",
    },
}


def promo_labels(language: str) -> dict[str, str]:
    """The form's texts in `language` (English for a key it lacks)."""
    return {**PROMO_LABELS["en"], **PROMO_LABELS.get(language, {})}


def refusal_message(t: Mapping[str, str], exc: DomainError) -> tuple[str, int]:
    """Why a code was not applied, in the customer's language, with the HTTP status of the page: 409
    for a code that does not apply here (the reason named), 404 for an unknown one, 422 for a malformed
    one. The service's English text is never shown."""
    if isinstance(exc, DiscountRefusedError):
        return t[f"promo_{exc.reason.value}"], 409
    if isinstance(exc, NotFoundError):
        return t["promo_unknown"], 404
    if isinstance(exc, ValidationError):
        return t["promo_invalid"], 422
    return t["promo_state"], 409
