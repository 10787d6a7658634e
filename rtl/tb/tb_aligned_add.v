// tb_aligned_add: nuq_aligned_add against a reference written with floor division (not
// shifts) on random main accumulators, shortcuts (accumulators and u8 levels), multipliers,
// shifts 0..62 and main shifts 0..30, plus the format's worked example (FORMAT.md §10).
`timescale 1ns/1ps
module tb_aligned_add;
    reg  [31:0] a, v, m;
    reg  [5:0]  s;
    reg  [4:0]  main_shift;
    wire [63:0] sum;
    nuq_aligned_add dut (.a(a), .v(v), .m(m), .s(s), .main_shift(main_shift), .sum(sum));

    integer errors, checks, seed, i;
    reg signed [63:0] p, num, den, q, expect_v;
    task check;
        begin
            #1;
            p = $signed(v) * $signed(m);
            if (s == 0) q = p;
            else begin
                den = 64'sd1 << s;
                num = p + (den / 2);
                // floor(num / den) for either sign
                if (num >= 0) q = num / den;
                else q = -((-num + den - 1) / den);
            end
            expect_v = $signed(a) * (64'sd1 << main_shift) + q;
            checks = checks + 1;
            if ($signed(sum) !== expect_v) begin
                errors = errors + 1;
                if (errors < 5) $display("FAIL a=%0d v=%0d m=%0d s=%0d ms=%0d got=%0d expected=%0d",
                    $signed(a), $signed(v), $signed(m), s, main_shift, $signed(sum), expect_v);
            end
        end
    endtask
    initial begin
        errors = 0; checks = 0; seed = 21;
        // worked example: multipliers 3, -1, shifts 1, 0, main_shift 2
        a = 10; v = 5; m = 3; s = 1; main_shift = 2; check;      // 40 + round(7.5) = 48
        a = -7; v = -3; m = 3; s = 1; main_shift = 2; check;     // -28 + floor(-4) = -32
        a = 1; v = 9; m = -1; s = 0; main_shift = 2; check;
        for (i = 0; i < 20000; i = i + 1) begin
            a = $random(seed);
            v = $random(seed);
            if (i & 1) v = v & 32'd255;
            m = $random(seed);
            s = ($random(seed) & 32'h7fff_ffff) % 63;
            main_shift = ($random(seed) & 32'h7fff_ffff) % 31;
            check;
        end
        if (errors == 0) $display("PASS tb_aligned_add checks=%0d", checks);
        else $display("FAIL tb_aligned_add errors=%0d of %0d", errors, checks);
        $finish;
    end
endmodule
