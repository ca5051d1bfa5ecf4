"""An in-memory DynamoDB low-level client for the CPU and cost benchmarks.

Conditional writes, update expressions (SET, if_not_exists, ADD, REMOVE) and key conditions are
evaluated for real; a failed condition raises botocore's ClientError with code
ConditionalCheckFailedException (with the old item when ALL_OLD was asked for). Every call is
recorded with the items it carried (bench._support.Recorder), so bench.billing computes write and
read units from what was actually written and read.
"""

from __future__ import annotations

import re
from typing import Any

from bench._support import ACCOUNT, REGION, Call, Recorder, _client_error, physical, topology

_TOKEN = re.compile(r"\s*(\(|\)|,|<>|<=|>=|=|<|>|[#:]?[A-Za-z_][A-Za-z0-9_.]*)")


def _tokens(expression: str) -> list[str]:
    out, pos = [], 0
    expression = expression.strip()
    while pos < len(expression):
        m = _TOKEN.match(expression, pos)
        if not m:
            raise ValueError(f"cannot parse condition at {expression[pos:]!r}")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(expression) and expression[pos].isspace():
            pos += 1
    return out


def _compile_condition(expression: str):
    """A tiny DynamoDB condition-expression compiler: OR/AND/NOT, ( ), attribute_(not_)exists,
    comparisons. Returns f(item, names, values) -> bool. Enough for every condition used here."""
    toks = _tokens(expression)
    pos = 0

    def peek() -> str | None:
        return toks[pos] if pos < len(toks) else None

    def take(expected: str | None = None) -> str:
        nonlocal pos
        tok = toks[pos]
        if expected is not None and tok.upper() != expected:
            raise ValueError(f"expected {expected}, got {tok}")
        pos += 1
        return tok

    def operand():
        tok = take()
        if tok.startswith(":"):
            return lambda item, names, values, t=tok: values[t]
        return lambda item, names, values, t=tok: item.get(names.get(t, t)) if item else None

    def primary():
        tok = peek()
        if tok == "(":
            take("(")
            node = disjunction()
            take(")")
            return node
        if tok and tok.upper() == "NOT":
            take()
            inner = primary()
            return lambda item, names, values: not inner(item, names, values)
        if tok in ("attribute_exists", "attribute_not_exists"):
            take()
            take("(")
            attr = take()
            take(")")
            exists = tok == "attribute_exists"
            return lambda item, names, values: (item is not None and names.get(attr, attr) in item) == exists
        left = operand()
        op = take()
        right = operand()
        return lambda item, names, values: _compare(left(item, names, values), op, right(item, names, values))

    def conjunction():
        node = primary()
        while peek() and peek().upper() == "AND":
            take()
            a, b = node, primary()
            node = lambda item, names, values, a=a, b=b: a(item, names, values) and b(item, names, values)  # noqa: E731
        return node

    def disjunction():
        node = conjunction()
        while peek() and peek().upper() == "OR":
            take()
            a, b = node, conjunction()
            node = lambda item, names, values, a=a, b=b: a(item, names, values) or b(item, names, values)  # noqa: E731
        return node

    tree = disjunction()
    if pos != len(toks):
        raise ValueError(f"trailing tokens in {expression!r}")
    return tree


def _scalar(attr: dict | None) -> Any:
    if attr is None:
        return None
    (kind, value), = attr.items()
    return float(value) if kind == "N" else value


def _compare(a: dict | None, op: str, b: dict | None) -> bool:
    if a is None or b is None:
        return False  # a missing attribute makes every comparison false
    x, y = _scalar(a), _scalar(b)
    return {"=": x == y, "<>": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


_CLAUSE = re.compile(r"\b(SET|ADD|REMOVE)\b", re.IGNORECASE)
_TOP_LEVEL_COMMA = re.compile(r",(?![^(]*\))")  # not the comma inside if_not_exists( , )
_IF_NOT_EXISTS = re.compile(r"if_not_exists\(\s*([#\w.]+)\s*,\s*(:\w+)\s*\)")


def _apply_update(item: dict, expression: str, names: dict, values: dict) -> None:
    """SET a = :v | a = if_not_exists(a, :v), ADD n :k (numbers), REMOVE a: what the hub's updates use."""
    parts = _CLAUSE.split(expression)
    if parts[0].strip():
        raise NotImplementedError(expression)
    for verb, body in zip(parts[1::2], parts[2::2], strict=True):
        for clause in (c.strip() for c in _TOP_LEVEL_COMMA.split(body) if c.strip()):
            verb = verb.upper()
            if verb == "REMOVE":
                item.pop(names.get(clause, clause), None)
            elif verb == "ADD":
                name, value = clause.split()
                attr = names.get(name, name)
                total = float(item.get(attr, {"N": "0"})["N"]) + float(values[value]["N"])
                item[attr] = {"N": str(int(total)) if total.is_integer() else str(total)}
            else:
                name, _, value = (part.strip() for part in clause.partition("="))
                attr = names.get(name, name)
                m = _IF_NOT_EXISTS.fullmatch(value)
                if m:
                    if attr not in item:
                        item[attr] = values[m.group(2)]
                else:
                    item[attr] = values[value]


class FakeDynamo:
    """An in-memory DynamoDB low-level client for the calls the hub (and Powertools idempotency) make.

    Conditional writes are evaluated for real; a failure raises ClientError
    ConditionalCheckFailedException (billed like DynamoDB bills it: see bench.billing).
    Tables whose name is in `streams` record NEW_AND_OLD_IMAGES stream records.
    """

    def __init__(self, key_schema: dict[str, tuple[str, ...]], streams: tuple[str, ...] = (),
                 recorder: Recorder | None = None) -> None:
        self.key_schema = key_schema
        self.tables: dict[str, dict[tuple, dict]] = {name: {} for name in key_schema}
        self.streams = set(streams)
        self.stream_records: list[dict[str, Any]] = []
        self.recorder = recorder
        self._conditions: dict[str, Any] = {}

    def _key(self, table: str, item_or_key: dict) -> tuple:
        keys = self.key_schema[table]
        if len(keys) == 1:
            return (next(iter(item_or_key[keys[0]].values())),)
        return tuple(next(iter(item_or_key[k].values())) for k in keys)

    def _check(self, condition: str | None, current: dict | None, names: dict | None, values: dict | None) -> bool:
        if not condition:
            return True
        fn = self._conditions.get(condition)
        if fn is None:
            fn = self._conditions[condition] = _compile_condition(condition)
        return fn(current, names or {}, values or {})

    def _stream(self, table: str, old: dict | None, new: dict | None) -> None:
        if table in self.streams:
            name = "INSERT" if old is None else ("REMOVE" if new is None else "MODIFY")
            images: dict[str, Any] = {"Keys": {k: (new or old)[k] for k in self.key_schema[table]},
                                      "StreamViewType": "NEW_AND_OLD_IMAGES"}
            if new is not None:
                images["NewImage"] = new
            if old is not None:
                images["OldImage"] = old
            self.stream_records.append({"eventID": str(len(self.stream_records)), "eventName": name,
                                        "eventSource": "aws:dynamodb", "awsRegion": REGION,
                                        "eventSourceARN": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/stream/x",
                                        "dynamodb": images})

    def get_item(self, TableName: str, Key: dict, ConsistentRead: bool = False, **kwargs: Any) -> dict:  # noqa: N803
        item = self.tables[TableName].get(self._key(TableName, Key))
        if self.recorder:
            self.recorder.add(Call("dynamodb", "GetItem", TableName, item=item, consistent=bool(ConsistentRead)))
        return {"Item": item} if item is not None else {}

    def put_item(self, TableName: str, Item: dict, ConditionExpression: str | None = None,  # noqa: N803
                 ExpressionAttributeNames: dict | None = None, ExpressionAttributeValues: dict | None = None,  # noqa: N803
                 ReturnValuesOnConditionCheckFailure: str | None = None, **kwargs: Any) -> dict:  # noqa: N803
        table = self.tables[TableName]
        key = self._key(TableName, Item)
        current = table.get(key)
        ok = self._check(ConditionExpression, current, ExpressionAttributeNames, ExpressionAttributeValues)
        if self.recorder:
            self.recorder.add(Call("dynamodb", "PutItem", TableName, item=Item, old=current, ok=ok))
        if not ok:
            raise _client_error("ConditionalCheckFailedException", "The conditional request failed", "PutItem",
                                current if ReturnValuesOnConditionCheckFailure == "ALL_OLD" else None)
        table[key] = Item
        self._stream(TableName, current, Item)
        return {}

    def update_item(self, TableName: str, Key: dict, UpdateExpression: str,  # noqa: N803
                    ExpressionAttributeNames: dict | None = None, ExpressionAttributeValues: dict | None = None,  # noqa: N803
                    ConditionExpression: str | None = None, **kwargs: Any) -> dict:  # noqa: N803
        table = self.tables[TableName]
        key = self._key(TableName, Key)
        current = table.get(key)
        names, values = ExpressionAttributeNames or {}, ExpressionAttributeValues or {}
        ok = self._check(ConditionExpression, current, names, values)
        new = dict(current or Key)
        if ok:
            _apply_update(new, UpdateExpression, names, values)
        if self.recorder:
            self.recorder.add(Call("dynamodb", "UpdateItem", TableName, item=new, old=current, ok=ok))
        if not ok:
            raise _client_error("ConditionalCheckFailedException", "The conditional request failed", "UpdateItem")
        table[key] = new
        self._stream(TableName, current, new)
        return {}

    def batch_write_item(self, RequestItems: dict[str, list[dict]], **kwargs: Any) -> dict:  # noqa: N803
        """Unconditional puts, each billed as its own PutItem (DynamoDB bills a batch per item); one
        BatchWriteItem call is recorded for the request itself (its wait), each item as a BatchPut."""
        if self.recorder:
            self.recorder.add(Call("dynamodb", "BatchWriteItem"))
        for table, requests in RequestItems.items():
            for request in requests:
                item = request["PutRequest"]["Item"]
                key = self._key(table, item)
                current = self.tables[table].get(key)
                if self.recorder:
                    self.recorder.add(Call("dynamodb", "BatchPut", table, item=item, old=current, ok=True))
                self.tables[table][key] = item
                self._stream(table, current, item)
        return {"UnprocessedItems": {}}

    def delete_item(self, TableName: str, Key: dict, **kwargs: Any) -> dict:  # noqa: N803
        current = self.tables[TableName].pop(self._key(TableName, Key), None)
        if self.recorder:
            self.recorder.add(Call("dynamodb", "DeleteItem", TableName, item=current, old=current))
        if current is not None:
            self._stream(TableName, current, None)
        return {}

    def transact_write_items(self, TransactItems: list[dict], **kwargs: Any) -> dict:  # noqa: N803
        """All or nothing. Only Put (with optional condition) is needed here."""
        checks = []
        for entry in TransactItems:
            put = entry["Put"]
            table, item = put["TableName"], put["Item"]
            current = self.tables[table].get(self._key(table, item))
            ok = self._check(put.get("ConditionExpression"), current, put.get("ExpressionAttributeNames"),
                             put.get("ExpressionAttributeValues"))
            checks.append((table, item, current, ok))
        all_ok = all(ok for *_, ok in checks)
        if self.recorder:
            self.recorder.add(Call("dynamodb", "TransactWriteItems", ok=all_ok))
            for table, item, current, _ok in checks:
                self.recorder.add(Call("dynamodb", "TransactPut", table, item=item, old=current, ok=all_ok,
                                       transactional=True))
        if not all_ok:
            reasons = [{"Code": "None"} if ok else {"Code": "ConditionalCheckFailed"} for *_, ok in checks]
            err = _client_error("TransactionCanceledException", "Transaction cancelled", "TransactWriteItems")
            err.response["CancellationReasons"] = reasons
            raise err
        for table, item, current, _ok in checks:
            self.tables[table][self._key(table, item)] = item
            self._stream(table, current, item)
        return {}

    def query(self, TableName: str, KeyConditionExpression: str, ExpressionAttributeValues: dict,  # noqa: N803
              ExclusiveStartKey: dict | None = None, ExpressionAttributeNames: dict | None = None,  # noqa: N803
              **kwargs: Any) -> dict:
        """`key = :v`, optionally `AND begins_with(sk, :p)` or `AND sk <op> :v`; on a table or an index
        (whose keys are attributes of its items). One page: everything that matches."""
        names = ExpressionAttributeNames or {}
        m = re.fullmatch(r"\s*([#\w]+)\s*=\s*(:\w+)\s*(?:AND\s+(.+?))?\s*", KeyConditionExpression, re.IGNORECASE)
        if not m:
            raise NotImplementedError(KeyConditionExpression)
        attr, placeholder, sort = m.groups()
        attr = names.get(attr, attr)
        wanted = _scalar(ExpressionAttributeValues[placeholder])
        sort_test = (lambda item: True) if not sort else _sort_condition(sort, names, ExpressionAttributeValues)
        items = [item for key, item in sorted(self.tables[TableName].items(), key=lambda kv: kv[0])
                 if attr in item and _scalar(item[attr]) == wanted and sort_test(item)]
        if self.recorder:
            self.recorder.add(Call("dynamodb", "Query", TableName, item={"Items": {"L": [{"M": i} for i in items]}},
                                   consistent=bool(kwargs.get("ConsistentRead"))))
        return {"Items": items, "Count": len(items)}

    def scan(self, TableName: str, FilterExpression: str | None = None, **kwargs: Any) -> dict:  # noqa: N803
        """Every item (one page); a filter is applied only when it is one the condition compiler reads."""
        items = [item for _, item in sorted(self.tables[TableName].items(), key=lambda kv: kv[0])]
        if FilterExpression:
            items = [i for i in items if self._check(FilterExpression, i, kwargs.get("ExpressionAttributeNames"),
                                                     kwargs.get("ExpressionAttributeValues"))]
        if self.recorder:
            self.recorder.add(Call("dynamodb", "Scan", TableName, item={"Items": {"L": [{"M": i} for i in items]}}))
        return {"Items": items, "Count": len(items)}


def _sort_condition(text: str, names: dict, values: dict):
    m = re.fullmatch(r"begins_with\(\s*([#\w]+)\s*,\s*(:\w+)\s*\)", text.strip())
    if m:
        attr, prefix = names.get(m.group(1), m.group(1)), _scalar(values[m.group(2)])
        return lambda item: attr in item and str(_scalar(item[attr])).startswith(str(prefix))
    m = re.fullmatch(r"([#\w]+)\s*(=|<>|<=|>=|<|>)\s*(:\w+)", text.strip())
    if not m:
        raise NotImplementedError(text)
    attr, op, value = names.get(m.group(1), m.group(1)), m.group(2), values[m.group(3)]
    return lambda item: _compare(item.get(attr), op, value)


def hub_dynamo(recorder: Recorder | None = None, stage: str = "local") -> FakeDynamo:
    """A FakeDynamo with the hub's tables under their physical names (orders has the stream)."""
    keys = {physical(t.name, stage): tuple(k for k in (t.partition_key, t.sort_key) if k) for t in topology().tables}
    return FakeDynamo(keys, streams=(physical("orders", stage),), recorder=recorder)
