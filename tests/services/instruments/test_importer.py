from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.errors import ImportFileInvalid
from app.services.instruments.importer import BUNDLED_INSTRUMENTS_CSV, InstrumentImporter
from app.store.database import Database
from app.store.instruments import InstrumentStore, instruments
from tests.support.instruments import HEADER, csv_row, csv_text, database, database_url

__all__ = ["database", "database_url"]


def importer(database: Database) -> InstrumentImporter:
    return InstrumentImporter(store=InstrumentStore(database))


async def table(database: Database) -> dict[int, dict[str, object]]:
    async with database.engine.connect() as conn:
        result = await conn.execute(sa.select(instruments))
        return {row.instrument_token: dict(row._mapping) for row in result}


class TestImport:
    async def test_imports_the_bundled_sample(self, database: Database) -> None:
        report = await importer(database).import_csv(BUNDLED_INSTRUMENTS_CSV)
        assert report.rejected == []
        assert report.inserted == report.rows >= 40
        rows = await table(database)
        exchanges = {row["exchange"] for row in rows.values()}
        assert exchanges == {"NSE", "BSE", "NFO"}
        symbols = {(row["exchange"], row["tradingsymbol"]) for row in rows.values()}
        assert {("NSE", "INFY"), ("BSE", "INFY"), ("NSE", "RELIANCE"), ("NSE", "TCS")} <= symbols
        assert {row["lot_size"] for row in rows.values()} >= {Decimal(1), Decimal(25), Decimal(50)}
        assert {row["tick_size"] for row in rows.values()} >= {Decimal("0.05"), Decimal("0.01")}

    async def test_decimals_and_dates_round_trip_exactly(self, database: Database) -> None:
        text = csv_text(
            csv_row(1, "A", tick="0.05", lot="25", last_price="1234.55", strike="24000.5"),
            csv_row(2, "B", tick="0.0025", lot="0.001", last_price="0.1", expiry="2026-11-26"),
            csv_row(3, "C", tick="0.01", last_price="", strike=""),
        )
        report = await importer(database).import_text(text)
        assert (report.inserted, report.rejected) == (3, [])
        rows = await table(database)
        assert rows[1]["tick_size"] == Decimal("0.05")
        assert str(rows[1]["last_price"]).rstrip("0") == "1234.55"
        assert rows[1]["strike"] == Decimal("24000.5")
        assert rows[2]["tick_size"] == Decimal("0.0025")
        assert rows[2]["lot_size"] == Decimal("0.001")
        assert rows[2]["last_price"] == Decimal("0.1")  # a float column would give 0.1000…0055
        assert rows[2]["expiry"] == date(2026, 11, 26)
        assert rows[3]["last_price"] == Decimal(0)
        assert rows[1]["status"] == "active"
        updated_at = rows[1]["updated_at"]
        assert getattr(updated_at, "tzinfo", None) is not None

    async def test_bad_rows_are_reported_by_line_and_good_ones_imported(
        self, database: Database
    ) -> None:
        text = csv_text(
            csv_row(1, "GOOD1"),
            csv_row(2, "BADTICK", tick="0"),  # line 3
            csv_row(3, "BADLOT", lot="-1"),
            csv_row(4, "SCI", last_price="1e5"),
            "5,5,SHORT,Short",  # line 6: too few fields
            csv_row(6, "BADDATE", expiry="26-11-2026"),
            csv_row(1, "DUPTOKEN"),  # line 8
            csv_row(7, "GOOD1"),  # line 9: same NSE:GOOD1
            csv_row(8, "BAD:SYM"),
            csv_row(9, "GOOD2"),  # line 11
            csv_row(0, "ZEROTOKEN"),
            csv_row(10, "MANYDEC", tick="0.000000001"),
            csv_row(11, "NaNPRICE", last_price="NaN"),
            "",  # line 15: blank lines are skipped, not counted
            csv_row(2**63, "HUGETOKEN"),
            csv_row(12, "SHORTDATE", expiry="2026-1-1"),
            csv_row(13, "LONGNAME", name="N" * 201),
        )
        report = await importer(database).import_text(text)
        assert report.inserted == 2
        assert report.rows == 16
        lines = {rejected.line: rejected.reason for rejected in report.rejected}
        assert sorted(lines) == [3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 16, 17, 18]
        assert "tick_size" in lines[3]
        assert "lot_size" in lines[4]
        assert "last_price" in lines[5]
        assert "fields" in lines[6]
        assert "expiry" in lines[7]
        assert "repeats line 2" in lines[8]
        assert "NSE:GOOD1 repeats line 2" in lines[9]
        assert "tradingsymbol" in lines[10]
        assert "instrument_token" in lines[12]
        assert "decimals" in lines[13]
        assert "too large" in lines[16]
        assert "YYYY-MM-DD" in lines[17]
        assert "name is longer" in lines[18]
        assert sorted(await table(database)) == [1, 9]

    async def test_reimport_updates_and_keeps_halts(self, database: Database) -> None:
        imp = importer(database)
        await imp.import_text(csv_text(csv_row(1, "A"), csv_row(2, "B", last_price="10")))
        await InstrumentStore(database).set_status(2, "halted", now=datetime.now(UTC))
        report = await imp.import_text(
            csv_text(csv_row(1, "A"), csv_row(2, "B", last_price="11.5"), csv_row(3, "C"))
        )
        assert (report.inserted, report.updated, len(report.rejected)) == (1, 2, 0)
        rows = await table(database)
        assert rows[2]["last_price"] == Decimal("11.5")
        assert rows[2]["status"] == "halted"

    async def test_delist_missing_marks_absent_instruments(self, database: Database) -> None:
        imp = importer(database)
        await imp.import_text(csv_text(csv_row(1, "A"), csv_row(2, "B"), csv_row(3, "C")))
        report = await imp.import_text(
            csv_text(csv_row(1, "A"), csv_row(3, "C", tick="0")), delist_missing=True
        )
        assert report.delisted == 1
        assert [r.line for r in report.rejected] == [3]
        rows = await table(database)
        # Token 3's row was refused, but it is in the file: a typo must not delist it.
        assert {token: row["status"] for token, row in rows.items()} == {
            1: "active",
            2: "delisted",
            3: "active",
        }
        again = await imp.import_text(csv_text(csv_row(1, "A")), delist_missing=True)
        assert again.delisted == 1  # 3 only: 2 is already delisted
        revived = await imp.import_text(csv_text(csv_row(2, "B")))
        assert revived.updated == 1
        assert (await table(database))[2]["status"] == "active"

    async def test_symbol_owned_by_another_token_is_refused(self, database: Database) -> None:
        imp = importer(database)
        await imp.import_text(csv_text(csv_row(1, "A")))
        report = await imp.import_text(csv_text(csv_row(2, "A"), csv_row(3, "B")))
        assert report.inserted == 1
        assert len(report.rejected) == 1
        assert "NSE:A already belongs to instrument_token 1" in report.rejected[0].reason
        assert sorted(await table(database)) == [1, 3]

    async def test_refuses_delisting_everything_from_an_empty_file(
        self, database: Database
    ) -> None:
        imp = importer(database)
        await imp.import_text(csv_text(csv_row(1, "A")))
        with pytest.raises(ImportFileInvalid, match="no valid rows"):
            await imp.import_text(csv_text(csv_row(2, "B", tick="x")), delist_missing=True)
        assert (await table(database))[1]["status"] == "active"

    @pytest.mark.parametrize(
        "content", ["", "a,b,c\n1,2,3\n", HEADER.replace("tick_size", "tick") + "\n"]
    )
    async def test_wrong_header_is_a_file_error(self, database: Database, content: str) -> None:
        with pytest.raises(ImportFileInvalid) as caught:
            await importer(database).import_text(content)
        assert caught.value.code == "INVALID_IMPORT_FILE"
        assert await table(database) == {}

    async def test_columns_in_any_order_with_extras_and_bom(
        self, database: Database, tmp_path: Path
    ) -> None:
        path = tmp_path / "reordered.csv"
        path.write_text(
            "\ufeffexchange,tradingsymbol,extra,instrument_token,exchange_token,name,last_price,"
            "expiry,strike,tick_size,lot_size,instrument_type,segment\n"
            'NSE,M&M,x,519937,2031,"MAHINDRA, LTD",2911.05,,0,0.05,1,EQ,NSE\n'
            "NSE,NIFTY 50,x,256265,1001,NIFTY 50,24000,,0,0.05,1,INDEX,INDICES\n",
            encoding="utf-8",
        )
        report = await importer(database).import_csv(path)
        assert report.rejected == []
        rows = await table(database)
        assert rows[519937]["name"] == "MAHINDRA, LTD"
        assert rows[256265]["tradingsymbol"] == "NIFTY 50"

    async def test_unreadable_file(self, database: Database, tmp_path: Path) -> None:
        with pytest.raises(ImportFileInvalid, match="cannot read"):
            await importer(database).import_csv(tmp_path / "missing.csv")


class TestSeed:
    async def test_seeds_only_an_empty_table(self, database: Database) -> None:
        imp = importer(database)
        first = await imp.seed_if_empty(BUNDLED_INSTRUMENTS_CSV)
        assert first is not None
        assert first.inserted > 0
        assert await imp.seed_if_empty(BUNDLED_INSTRUMENTS_CSV) is None
