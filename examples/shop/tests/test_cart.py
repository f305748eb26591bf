from shop.cart import Cart


def test_subtotal_counts_quantities():
    cart = Cart()
    cart.add("apple", 50, 3)
    assert cart.subtotal() == 150
    assert cart.count() == 3
