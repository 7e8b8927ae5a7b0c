from __future__ import annotations

import pytest

from lambdas.policies.detectors import (
    contains_cnpj,
    contains_cpf,
    contains_email,
    contains_phone,
    is_valid_br_phone,
    is_valid_cnpj,
    is_valid_cpf,
)


@pytest.mark.parametrize("cpf", ["529.982.247-25", "52998224725", "111.444.777-35"])
def test_cpfs_with_right_check_digits_are_valid(cpf: str) -> None:
    assert is_valid_cpf(cpf)


@pytest.mark.parametrize(
    "cpf",
    [
        "529.982.247-24",  # second check digit wrong
        "529.982.247-15",  # first check digit wrong
        "111.111.111-11",  # one repeated digit passes the arithmetic but is not a CPF
        "5299822472",  # ten digits
        "529982247255",  # twelve digits
    ],
)
def test_cpfs_with_wrong_digits_or_shape_are_invalid(cpf: str) -> None:
    assert not is_valid_cpf(cpf)


@pytest.mark.parametrize(
    "cnpj", ["11.222.333/0001-81", "11222333000181", "12.ABC.345/01DE-35", "12ABC34501DE35"]
)
def test_cnpjs_numeric_and_alphanumeric_with_right_check_digits_are_valid(cnpj: str) -> None:
    assert is_valid_cnpj(cnpj)


@pytest.mark.parametrize(
    "cnpj",
    ["11.222.333/0001-80", "11.222.333/0001-91", "00.000.000/0000-00", "12.ABC.345/01DE-36"],
)
def test_cnpjs_with_wrong_check_digits_are_invalid(cnpj: str) -> None:
    assert not is_valid_cnpj(cnpj)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("meu cpf é 529.982.247-25, obrigado", True),
        ("cpf:52998224725.", True),
        ("pedido 529.982.247-24", False),  # shape of a CPF, wrong check digit
        ("conta 1529.982.247-25", False),  # part of a longer number
        ("nada aqui", False),
    ],
)
def test_cpf_detection_in_text(text: str, found: bool) -> None:
    assert contains_cpf(text) is found


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("CNPJ 11.222.333/0001-81 da matriz", True),
        ("novo cnpj 12.ABC.345/01DE-35", True),
        ("CNPJ 11.222.333/0001-80", False),
    ],
)
def test_cnpj_detection_in_text(text: str, found: bool) -> None:
    assert contains_cnpj(text) is found


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("escreva para joao.silva@empresa.com.br hoje", True),
        ("contato: a+b@x.io", True),
        ("arroba solta @ aqui e joao@localhost", False),
        ("sem email", False),
    ],
)
def test_email_detection_in_text(text: str, found: bool) -> None:
    assert contains_email(text) is found


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("ligue (11) 91234-5678", True),
        ("fixo +55 21 3456-7890", True),
        ("whats 5511912345678", True),
        ("11 912345678", True),
        ("(10) 91234-5678", False),  # 10 is no area code
        ("(11) 81234-5678", False),  # neither a mobile (9...) nor a landline (2-5...)
        ("529.982.247-25", False),
    ],
)
def test_brazilian_phone_detection_in_text(text: str, found: bool) -> None:
    assert contains_phone(text) is found


def test_a_single_phone_number_is_validated_with_its_area_code() -> None:
    assert is_valid_br_phone("(48) 3222-1234")
    assert not is_valid_br_phone("(20) 3222-1234")
