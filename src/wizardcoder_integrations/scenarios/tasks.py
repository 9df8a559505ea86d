"""The Alpaca tasks the stand-in learns: instruction, code, and a check that the code is right."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CODE_TASKS", "TEXT_TASKS", "CodeTask"]


@dataclass(frozen=True)
class CodeTask:
    instruction: str
    code: str
    check: str  # statements that raise unless ``code`` is right

    @property
    def response(self) -> str:
        return f"\n```python\n{self.code}\n```"


def _t(instruction: str, code: str, check: str) -> CodeTask:
    return CodeTask(instruction, code.strip("\n"), check.strip("\n"))


CODE_TASKS: tuple[CodeTask, ...] = (
    _t("Write a Python function add(a, b) that returns the sum of two numbers.",
       "def add(a, b):\n    return a + b", "assert add(2, 3) == 5"),
    _t("Write a Python function is_even(n) that returns True if n is even.",
       "def is_even(n):\n    return n % 2 == 0", "assert is_even(4) and not is_even(7)"),
    _t("Write a Python function factorial(n) that returns n factorial.",
       "def factorial(n):\n    result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result",
       "assert factorial(5) == 120 and factorial(0) == 1"),
    _t("Write a Python function fibonacci(n) that returns the n-th Fibonacci number.",
       "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
       "assert [fibonacci(i) for i in range(7)] == [0, 1, 1, 2, 3, 5, 8]"),
    _t("Write a Python function reverse_string(s) that returns s reversed.",
       "def reverse_string(s):\n    return s[::-1]", "assert reverse_string('abc') == 'cba'"),
    _t("Write a Python function is_palindrome(s) that checks whether s reads the same backwards.",
       "def is_palindrome(s):\n    return s == s[::-1]", "assert is_palindrome('level') and not is_palindrome('ab')"),
    _t("Write a Python function count_vowels(s) that counts the vowels in a string.",
       "def count_vowels(s):\n    return sum(1 for c in s.lower() if c in 'aeiou')",
       "assert count_vowels('Education') == 5"),
    _t("Write a Python function max_of_list(xs) that returns the largest element of a list.",
       "def max_of_list(xs):\n    best = xs[0]\n    for x in xs[1:]:\n        if x > best:\n            best = x\n"
       "    return best", "assert max_of_list([3, 9, 2]) == 9"),
    _t("Write a Python function is_prime(n) that checks whether n is a prime number.",
       "def is_prime(n):\n    if n < 2:\n        return False\n    i = 2\n    while i * i <= n:\n"
       "        if n % i == 0:\n            return False\n        i += 1\n    return True",
       "assert [n for n in range(12) if is_prime(n)] == [2, 3, 5, 7, 11]"),
    _t("Write a Python function gcd(a, b) that returns the greatest common divisor.",
       "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a", "assert gcd(12, 18) == 6"),
    _t("Write a Python function lcm(a, b) that returns the least common multiple.",
       "def lcm(a, b):\n    x, y = a, b\n    while y:\n        x, y = y, x % y\n    return a * b // x",
       "assert lcm(4, 6) == 12"),
    _t("Write a Python function fizzbuzz(n) that returns the FizzBuzz list from 1 to n.",
       "def fizzbuzz(n):\n    out = []\n    for i in range(1, n + 1):\n        if i % 15 == 0:\n"
       "            out.append('FizzBuzz')\n        elif i % 3 == 0:\n            out.append('Fizz')\n"
       "        elif i % 5 == 0:\n            out.append('Buzz')\n        else:\n            out.append(str(i))\n"
       "    return out", "assert fizzbuzz(5) == ['1', '2', 'Fizz', '4', 'Buzz'] and fizzbuzz(15)[-1] == 'FizzBuzz'"),
    _t("Write a Python function sum_list(xs) that returns the sum of a list of numbers.",
       "def sum_list(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total",
       "assert sum_list([1, 2, 3]) == 6"),
    _t("Write a Python function average(xs) that returns the mean of a list of numbers.",
       "def average(xs):\n    return sum(xs) / len(xs)", "assert average([1, 2, 3, 4]) == 2.5"),
    _t("Write a Python function celsius_to_fahrenheit(c) that converts a temperature.",
       "def celsius_to_fahrenheit(c):\n    return c * 9 / 5 + 32", "assert celsius_to_fahrenheit(100) == 212"),
    _t("Write a Python function square_list(xs) that returns the squares of the numbers in xs.",
       "def square_list(xs):\n    return [x * x for x in xs]", "assert square_list([1, 2, 3]) == [1, 4, 9]"),
    _t("Write a Python function filter_even(xs) that keeps only the even numbers of a list.",
       "def filter_even(xs):\n    return [x for x in xs if x % 2 == 0]", "assert filter_even([1, 2, 3, 4]) == [2, 4]"),
    _t("Write a Python function word_count(s) that returns the number of words in a sentence.",
       "def word_count(s):\n    return len(s.split())", "assert word_count('the quick brown fox') == 4"),
    _t("Write a Python function char_frequency(s) that returns a dict of character counts.",
       "def char_frequency(s):\n    counts = {}\n    for c in s:\n        counts[c] = counts.get(c, 0) + 1\n"
       "    return counts", "assert char_frequency('aab') == {'a': 2, 'b': 1}"),
    _t("Write a Python function remove_duplicates(xs) that removes duplicates and keeps the order.",
       "def remove_duplicates(xs):\n    seen = set()\n    out = []\n    for x in xs:\n        if x not in seen:\n"
       "            seen.add(x)\n            out.append(x)\n    return out",
       "assert remove_duplicates([3, 1, 3, 2, 1]) == [3, 1, 2]"),
    _t("Write a Python function flatten(xss) that flattens a list of lists.",
       "def flatten(xss):\n    return [x for xs in xss for x in xs]", "assert flatten([[1, 2], [3], []]) == [1, 2, 3]"),
    _t("Write a Python function binary_search(xs, target) that returns the index of target in a sorted "
       "list, or -1.",
       "def binary_search(xs, target):\n    lo, hi = 0, len(xs) - 1\n    while lo <= hi:\n"
       "        mid = (lo + hi) // 2\n        if xs[mid] == target:\n            return mid\n"
       "        if xs[mid] < target:\n            lo = mid + 1\n        else:\n            hi = mid - 1\n"
       "    return -1", "assert binary_search([1, 3, 5, 7], 5) == 2 and binary_search([1, 3], 4) == -1"),
    _t("Write a Python function bubble_sort(xs) that sorts a list with bubble sort.",
       "def bubble_sort(xs):\n    xs = list(xs)\n    for i in range(len(xs)):\n"
       "        for j in range(len(xs) - 1 - i):\n            if xs[j] > xs[j + 1]:\n"
       "                xs[j], xs[j + 1] = xs[j + 1], xs[j]\n    return xs",
       "assert bubble_sort([3, 1, 2]) == [1, 2, 3]"),
    _t("Write a Python function merge_sorted(a, b) that merges two sorted lists.",
       "def merge_sorted(a, b):\n    out = []\n    i = j = 0\n    while i < len(a) and j < len(b):\n"
       "        if a[i] <= b[j]:\n            out.append(a[i])\n            i += 1\n        else:\n"
       "            out.append(b[j])\n            j += 1\n    return out + a[i:] + b[j:]",
       "assert merge_sorted([1, 4], [2, 3, 5]) == [1, 2, 3, 4, 5]"),
    _t("Write a Python function capitalize_words(s) that capitalizes every word.",
       "def capitalize_words(s):\n    return ' '.join(w.capitalize() for w in s.split())",
       "assert capitalize_words('hello big world') == 'Hello Big World'"),
    _t("Write a Python function is_anagram(a, b) that checks whether two words are anagrams.",
       "def is_anagram(a, b):\n    return sorted(a) == sorted(b)", "assert is_anagram('listen', 'silent')"),
    _t("Write a Python function digit_sum(n) that returns the sum of the digits of n.",
       "def digit_sum(n):\n    return sum(int(d) for d in str(abs(n)))", "assert digit_sum(1234) == 10"),
    _t("Write a Python function power(base, exp) that computes base to the power exp with a loop.",
       "def power(base, exp):\n    result = 1\n    for _ in range(exp):\n        result *= base\n    return result",
       "assert power(2, 10) == 1024"),
    _t("Write a Python function min_max(xs) that returns the smallest and largest values as a tuple.",
       "def min_max(xs):\n    return min(xs), max(xs)", "assert min_max([4, 1, 9]) == (1, 9)"),
    _t("Write a Python function count_words(s) that returns a dict mapping each word to its count.",
       "def count_words(s):\n    counts = {}\n    for w in s.split():\n        counts[w] = counts.get(w, 0) + 1\n"
       "    return counts", "assert count_words('a b a') == {'a': 2, 'b': 1}"),
    _t("Write a Python function chunk(xs, n) that splits a list into chunks of size n.",
       "def chunk(xs, n):\n    return [xs[i:i + n] for i in range(0, len(xs), n)]",
       "assert chunk([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]"),
    _t("Write a Python function transpose(m) that transposes a matrix given as a list of rows.",
       "def transpose(m):\n    return [list(row) for row in zip(*m)]",
       "assert transpose([[1, 2], [3, 4]]) == [[1, 3], [2, 4]]"),
    _t("Write a Python function second_largest(xs) that returns the second largest distinct value.",
       "def second_largest(xs):\n    values = sorted(set(xs))\n    return values[-2]",
       "assert second_largest([5, 1, 5, 3]) == 3"),
    _t("Write a Python function running_sum(xs) that returns the running totals of a list.",
       "def running_sum(xs):\n    out = []\n    total = 0\n    for x in xs:\n        total += x\n"
       "        out.append(total)\n    return out", "assert running_sum([1, 2, 3]) == [1, 3, 6]"),
    _t("Write a Python function to_binary(n) that returns the binary representation of n as a string.",
       "def to_binary(n):\n    return bin(n)[2:]", "assert to_binary(10) == '1010'"),
    _t("Write a Python function count_upper(s) that counts the uppercase letters in a string.",
       "def count_upper(s):\n    return sum(1 for c in s if c.isupper())", "assert count_upper('Hello World') == 2"),
    _t("Write a Python function dict_invert(d) that swaps the keys and values of a dict.",
       "def dict_invert(d):\n    return {v: k for k, v in d.items()}", "assert dict_invert({'a': 1}) == {1: 'a'}"),
    _t("Write a Python function rotate_list(xs, k) that rotates a list to the right by k places.",
       "def rotate_list(xs, k):\n    if not xs:\n        return xs\n    k %= len(xs)\n    return xs[-k:] + xs[:-k]",
       "assert rotate_list([1, 2, 3, 4], 1) == [4, 1, 2, 3]"),
    _t("Write a Python function is_sorted(xs) that checks whether a list is sorted in ascending order.",
       "def is_sorted(xs):\n    return all(xs[i] <= xs[i + 1] for i in range(len(xs) - 1))",
       "assert is_sorted([1, 2, 2, 5]) and not is_sorted([2, 1])"),
    _t("Write a Python program that prints the numbers from 1 to 5.",
       "for i in range(1, 6):\n    print(i)", ""),
)

#: Answers whose text is hard on a tokenizer: emoji and CJK (byte-fallback pieces), tabs, runs of spaces.
TEXT_TASKS: tuple[CodeTask, ...] = (
    _t("Write a Python function shout(s) that returns s in upper case followed by a party emoji.",
       "def shout(s):\n    return s.upper() + ' 🎉'", "assert shout('hi') == 'HI 🎉'"),
    _t("Write a Python program that prints a greeting table in English, Chinese and Japanese.",
       "print('lang\tgreeting    note')\nprint('en\tHello 👋    wave')\nprint('zh\t你好，世界 🌏    earth')\n"
       "print('ja\tこんにちは  😀 smile')", ""),
)

#: Every code task the stand-in learns (the text tasks last).
CODE_TASKS = CODE_TASKS + TEXT_TASKS
