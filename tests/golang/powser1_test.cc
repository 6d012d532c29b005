// Port of Go's test/chan/powser1.go, by description (re-implemented, not
// copied): power series over exact rationals, each series a demand-driven
// stream (a request channel and a data channel) computed by goroutines, with
// a series split between two consumers by a chain of per-coefficient
// goroutines so that a series may be defined in terms of itself (Exp).
// Checks exact coefficients of Ones, Add, Cmul, Diff, Integ, Mul, Exp and
// MonSubst, as the Go test does.
#include <numeric>

#include "common.h"

namespace goro::test {
namespace {

struct Rat {
  long num = 0, den = 1;
  Rat() = default;
  Rat(long n, long d = 1) : num(n), den(d) {  // NOLINT: implicit from integers, like Go's itor
    if (den < 0) {
      num = -num;
      den = -den;
    }
    long g = std::gcd(num < 0 ? -num : num, den);
    if (g > 1) {
      num /= g;
      den /= g;
    }
  }
  friend Rat operator+(Rat a, Rat b) { return Rat(a.num * b.den + b.num * a.den, a.den * b.den); }
  friend Rat operator*(Rat a, Rat b) { return Rat(a.num * b.num, a.den * b.den); }
  friend Rat operator/(Rat a, Rat b) { return Rat(a.num * b.den, a.den * b.num); }
  friend bool operator==(Rat a, Rat b) { return a.num == b.num && a.den == b.den; }
  friend std::ostream& operator<<(std::ostream& o, Rat r) { return o << r.num << "/" << r.den; }
};

// A power series: ask with req, read the next coefficient from dat.
struct PS {
  Chan<int> req{0};
  Chan<Rat> dat{0};
};

Rat get(const PS& s) {
  s.req.send(0);
  return *s.dat.recv();
}

// Serves every request on `out` with the next coefficient of `in`.
void copy_to(PS in, PS out) {
  for (;;) {
    out.req.recv();
    out.dat.send(get(in));
  }
}

// One coefficient of a split: serve whichever output asks first, and hand
// the rest of the stream to a new goroutine as soon as `in` was asked, so the
// other output may ask for later coefficients meanwhile.
void split_one(PS in, PS out0, PS out1, Chan<int> wait) {
  bool both = false;
  select(recv(out0.req), recv(wait, [&](auto) {
           both = true;
           select(recv(out0.req), recv(out1.req, [&](auto) { std::swap(out0, out1); }));
         }));
  in.req.send(0);
  Chan<int> release(0);
  go(split_one, in, out0, out1, release);
  Rat v = *in.dat.recv();
  out0.dat.send(v);
  if (!both) wait.recv();
  out1.req.recv();
  out1.dat.send(v);
  release.send(0);
}

void split_into(PS in, PS out0, PS out1) {
  Chan<int> release(0);
  go(split_one, in, out0, out1, release);
  release.send(0);
}

std::pair<PS, PS> split(PS in) {
  PS a, b;
  go(split_into, in, a, b);
  return {a, b};
}

PS series(std::function<Rat(long)> coef) {
  PS z;
  go([z, coef] {
    for (long i = 0;; ++i) {
      z.req.recv();
      z.dat.send(coef(i));
    }
  });
  return z;
}

PS ones() { return series([](long) { return Rat(1); }); }
PS twos() { return series([](long) { return Rat(2); }); }

PS add(PS u, PS v) {
  PS z;
  go([=] {
    for (;;) {
      z.req.recv();
      z.dat.send(get(u) + get(v));
    }
  });
  return z;
}

PS cmul(Rat c, PS u) {
  PS z;
  go([=] {
    for (;;) {
      z.req.recv();
      z.dat.send(c * get(u));
    }
  });
  return z;
}

// Derivative: drops u0, multiplies u_i by i.
PS diff(PS u) {
  PS z;
  go([=] {
    get(u);
    for (long i = 1;; ++i) {
      z.req.recv();
      z.dat.send(Rat(i) * get(u));
    }
  });
  return z;
}

// Integral with constant term c.
PS integ(Rat c, PS u) {
  PS z;
  go([=] {
    z.req.recv();
    z.dat.send(c);
    for (long i = 1;; ++i) {
      z.req.recv();
      z.dat.send(get(u) / Rat(i));
    }
  });
  return z;
}

// Product: Z = u0 v0 + x (u0 V1 + v0 U1) + x^2 U1 V1.
PS mul(PS u, PS v) {
  PS z;
  go([=] {
    z.req.recv();
    Rat u0 = get(u), v0 = get(v);
    z.dat.send(u0 * v0);
    auto [u1a, u1b] = split(u);
    auto [v1a, v1b] = split(v);
    PS w = add(cmul(u0, v1a), cmul(v0, u1a));
    z.req.recv();
    z.dat.send(get(w));
    copy_to(add(w, mul(u1b, v1b)), z);
  });
  return z;
}

// Exponential: X = 1 + integral(X * U'), a series defined through itself.
PS exp_series(PS u) {
  PS x0, x1;
  split_into(integ(Rat(1), mul(x0, diff(u))), x0, x1);
  return x1;
}

// Substitutes c x^n for x.
PS mon_subst(PS u, Rat c, int n) {
  PS z;
  go([=] {
    Rat cn = 1;
    for (;;) {
      z.req.recv();
      z.dat.send(cn * get(u));
      cn = cn * c;
      for (int i = 1; i < n; ++i) {
        z.req.recv();
        z.dat.send(Rat(0));
      }
    }
  });
  return z;
}

void check(PS s, std::vector<Rat> want, const char* what) {
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(get(s), want[i]) << what << " coefficient " << i;
}

class Powser1 : public ProcsTest {};
GORO_INSTANTIATE_PROCS(Powser1);

TEST_P(Powser1, Powser1) {
  run([] {
    check(ones(), {1, 1, 1, 1, 1}, "Ones");
    check(add(ones(), ones()), {2, 2, 2, 2, 2}, "Add Ones Ones");
    check(add(ones(), twos()), {3, 3, 3, 3, 3}, "Add Ones Twos");
    check(cmul(Rat(-1, 2), ones()), {Rat(-1, 2), Rat(-1, 2), Rat(-1, 2)}, "Cmul");
    check(diff(ones()), {1, 2, 3, 4, 5}, "Diff Ones");
    check(integ(Rat(0), ones()), {0, 1, Rat(1, 2), Rat(1, 3), Rat(1, 4)}, "Integ Ones");
    check(mul(ones(), ones()), {1, 2, 3, 4, 5}, "Mul Ones Ones");
    check(exp_series(ones()), {1, 1, Rat(3, 2), Rat(13, 6), Rat(73, 24)}, "Exp Ones");
    check(mon_subst(ones(), Rat(-1), 2), {1, 0, -1, 0, 1}, "MonSubst Ones -1 2");
    // e^x: 1/n!
    check(exp_series(series([](long i) { return i == 1 ? Rat(1) : Rat(0); })),
          {1, 1, Rat(1, 2), Rat(1, 6), Rat(1, 24), Rat(1, 120)}, "Exp x");
  });
}

}  // namespace
}  // namespace goro::test

// Not ported: nothing else from powser1.go; its twin powser2.go (interface-
// typed rationals) is the same computation and is not ported separately.
