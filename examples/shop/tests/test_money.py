from shop.money import Money


def test_add_same_currency():
    assert Money(150) + Money(250) == Money(400)


def test_str_formats_cents():
    assert str(Money(1234, "usd")) == "12.34 USD"
