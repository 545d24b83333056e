"""The console's texts for paused collection, list sorting, webhook delivery totals and the product and
webhook endpoint edits, in en, bg, ru and kk (merged by `labels.labels`; a test checks every English
key has its translation)."""

from __future__ import annotations

from typing import Final

EXTRA: Final[dict[str, dict[str, str]]] = {
    "en": {
        "collection": "Collection",
        "collection_running": "Automatic",
        "collection_paused": "Paused: invoices are issued, nothing is charged automatically",
        "act_pause_collection": "Pause collection",
        "act_resume_collection": "Resume collection",
        "pause_explained": (
            "Invoices go on being issued and numbered; the saved card is not charged and no retry runs "
            "until the pause ends. The customer can still pay."
        ),
        "resume_collection_explained": (
            "Automatic charges start again: what fell due is charged at the next run."
        ),
        "resumes_on": "Resumes on",
        "optional": "optional",
        "delivery_totals": "Deliveries of the filtered set",
        "edit": "Edit",
        "act_edit_product": "Edit the product",
        "product_description": "Description",
        "act_edit_webhook": "Edit the endpoint",
        "saved": "Saved.",
    },
    "bg": {
        "collection": "Събиране на плащания",
        "collection_running": "Автоматично",
        "collection_paused": "Спряно: фактурите се издават, нищо не се таксува автоматично",
        "act_pause_collection": "Спиране на събирането",
        "act_resume_collection": "Възобновяване на събирането",
        "pause_explained": (
            "Фактурите продължават да се издават и номерират; запазената карта не се таксува и не се "
            "правят повторни опити до края на спирането. Клиентът може да плати."
        ),
        "resume_collection_explained": (
            "Автоматичните плащания започват отново: дължимото се таксува при следващото изпълнение."
        ),
        "resumes_on": "Възобновява се на",
        "optional": "по избор",
        "delivery_totals": "Доставки от филтрираното множество",
        "edit": "Редакция",
        "act_edit_product": "Редакция на продукта",
        "product_description": "Описание",
        "act_edit_webhook": "Редакция на крайната точка",
        "saved": "Записано.",
    },
    "ru": {
        "collection": "Сбор платежей",
        "collection_running": "Автоматически",
        "collection_paused": "Приостановлен: счета выставляются, автоматических списаний нет",
        "act_pause_collection": "Приостановить сбор",
        "act_resume_collection": "Возобновить сбор",
        "pause_explained": (
            "Счета по-прежнему выставляются и нумеруются; сохранённая карта не списывается и повторные "
            "попытки не выполняются до конца паузы. Клиент может оплатить сам."
        ),
        "resume_collection_explained": (
            "Автоматические списания возобновляются: накопившийся долг списывается при следующем запуске."
        ),
        "resumes_on": "Возобновится",
        "optional": "необязательно",
        "delivery_totals": "Доставки выбранного набора",
        "edit": "Изменить",
        "act_edit_product": "Изменить продукт",
        "product_description": "Описание",
        "act_edit_webhook": "Изменить конечную точку",
        "saved": "Сохранено.",
    },
    "kk": {
        "collection": "Төлем жинау",
        "collection_running": "Автоматты",
        "collection_paused": "Тоқтатылған: шоттар шығарылады, автоматты түрде ештеңе алынбайды",
        "act_pause_collection": "Жинауды тоқтата тұру",
        "act_resume_collection": "Жинауды жалғастыру",
        "pause_explained": (
            "Шоттар бұрынғыдай шығарылып, нөмірленеді; сақталған картадан ақша алынбайды және қайталау "
            "әрекеттері үзіліс біткенше жасалмайды. Клиент өзі төлей алады."
        ),
        "resume_collection_explained": (
            "Автоматты төлемдер қайта басталады: жиналған берешек келесі іске қосуда алынады."
        ),
        "resumes_on": "Жалғасатын күні",
        "optional": "міндетті емес",
        "delivery_totals": "Сүзілген жиынның жеткізілімдері",
        "edit": "Өзгерту",
        "act_edit_product": "Өнімді өзгерту",
        "product_description": "Сипаттама",
        "act_edit_webhook": "Соңғы нүктені өзгерту",
        "saved": "Сақталды.",
    },
}
